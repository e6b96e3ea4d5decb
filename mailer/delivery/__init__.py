"""Deliveries (the queue) -> personalise -> SMTP transport (issue 6 builds it out)."""

from __future__ import annotations


class DeliveryError(Exception):
    """The SMTP server cannot be used at all (refused, auth failed)."""


class DeliveryReport:  # replaced by the real one
    deferred = 0

    def merge(self, other: DeliveryReport) -> DeliveryReport:
        return self


def deliver(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError


def pause_digest(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError


def resume_digest(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError
