"""Feature banks: cached teacher features, keyed by teacher, dataset fingerprint and split.

* :func:`extract` builds (or resumes, or reuses) one bank per teacher and returns a
  :class:`JointBank` joining them by sample id.
* :class:`TeacherBank` reads one bank folder; :func:`verify_bank` checks it fully.
* :func:`plan` says what an extraction would cost (``fusion-aft extract --dry-run``).
"""

from fusion_aft.bank.extract import BankLockedError, NonFiniteFeaturesError, PlanEntry, extract, plan
from fusion_aft.bank.index import IdIndex, UnknownIdsError
from fusion_aft.bank.joint import JointBank
from fusion_aft.bank.manifest import BankManifest, CorruptBankError
from fusion_aft.bank.store import TeacherBank, VerifyReport, bank_folder, find_banks, verify_bank

__all__ = [
    "BankLockedError",
    "BankManifest",
    "CorruptBankError",
    "IdIndex",
    "JointBank",
    "NonFiniteFeaturesError",
    "PlanEntry",
    "TeacherBank",
    "UnknownIdsError",
    "VerifyReport",
    "bank_folder",
    "extract",
    "find_banks",
    "plan",
    "verify_bank",
]
