"""The booking page puts every reason of the catalogue's vocabulary in plain words."""

from __future__ import annotations

import pytest

from ticketing.events.catalogue import Reason
from ticketing.shop.progress import reason_in_words


@pytest.mark.parametrize("reason", sorted(Reason.ALL))
def test_every_reason_of_the_vocabulary_reads_as_words(reason: str) -> None:
    words = reason_in_words(reason)

    assert words != reason
    assert words.endswith(".")
