"""Status codes explained for people: what a code means and what to check.

The user guidance of the package lives here, written once: ``sgx`` holds the
codes and Intel's mapping rules, the layers below raise
:class:`~sgx_quote_helper.errors.CodedError` leaves carrying their codes and
the hints only they know, and the layers that talk to people (the CLI,
``doctor``, the samples, the demo) render errors with ``diagnostics(guide)``.
This package sits just below those, above ``kube`` and ``service``.
"""

from sgx_quote_helper.explain._explain import Explanation, explain, guide
from sgx_quote_helper.explain._guidance import Code, meaning_and_check

__all__ = ["Code", "Explanation", "explain", "guide", "meaning_and_check"]
