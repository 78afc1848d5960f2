"""The job protocol's steps, as the Lambda and Batch adapters and the job commands use them.

One object, ``JobSteps``, holds the context (S3, the ledger of status objects, Batch, the
engines); its steps live beside it by concern:

- ``uploads``: an upload begins its job, which is priced at once or split (``start`` on the
  fast lane, ``admit`` and ``manage`` on the Batch lanes), or fails (``fail_upload``);
- ``parts``: a part is priced (``price_part``), fails (``part_failed``), the parts merge;
- ``commands``: failure routes that know the attempt (``fail_fence``), ``cancel``, ``retry``.

Every rule about a job's state is in ``lifecycle``; every step is idempotent and presents
its attempt's fence, so duplicate and late events, retries and crashes change nothing they
should not (docs/protocol.md, "Job states").
"""

from __future__ import annotations

from runtime.protocol.commands import Commands
from runtime.protocol.core import Action, BatchService, JobRef, StepOutcome
from runtime.protocol.parts import PartLost

__all__ = ["Action", "BatchService", "JobRef", "JobSteps", "PartLost", "StepOutcome"]


class JobSteps(Commands):
    """Every step of the job protocol (see the modules named above)."""
