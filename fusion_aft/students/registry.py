"""The student registry: names → student classes or factories ``(num_classes, **options)``."""

from __future__ import annotations

from fusion_aft.registry import Registry

STUDENTS: Registry = Registry("student", entry_point_group="fusion_aft.students")

#: Decorator (or call) adding a student factory: ``@register_student("my_net")``.
register_student = STUDENTS.register
