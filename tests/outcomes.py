"""Count which way each example of a property went, so a fuzz test shows that every branch ran.

A fuzz test whose inputs are never valid proves nothing about its success branch. Define the
property inside the test, note each example's outcome, run it, then require every outcome:

    def test_fuzz_frame():
        outcomes = Outcomes()

        @settings(max_examples=300)
        @given(data=FRAMES)
        def parse(data):
            try:
                frame = parse_frame(data)
            except SchemaError:
                outcomes.note("refused")
                return
            outcomes.note("accepted")
            assert frame.seq >= 1

        parse()
        outcomes.require("accepted", "refused")
"""

from __future__ import annotations

from collections import Counter

from hypothesis import event


class Outcomes(Counter):
    """How many examples of a property ended in each outcome."""

    def note(self, outcome: str) -> None:
        """Count one example's outcome (and show it in hypothesis' statistics)."""
        event(outcome)
        self[outcome] += 1

    def require(self, *outcomes: str, share: float = 0.1) -> None:
        """Fail unless each outcome ended at least `share` of all the examples."""
        total = sum(self.values())
        print(f"\noutcomes of {total} examples: {dict(self)}")
        missing = [o for o in outcomes if self[o] < share * total or self[o] == 0]
        assert not missing, (
            f"{', '.join(missing)} ran in too few of {total} examples ({dict(self)}); "
            f"each needs at least {share:.0%}"
        )
