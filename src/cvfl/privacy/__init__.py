"""Label protection: the leakage audit, gradient defences, label DP and their accounting.

``cvfl.privacy.config`` (the ``[privacy]`` section) is imported by the job file's loader and the
hello; the audit (:mod:`cvfl.privacy.audit`), the defences (:mod:`cvfl.privacy.defences`) and
the leader's :class:`cvfl.privacy.guard.LabelGuard` are imported from their modules.
"""
