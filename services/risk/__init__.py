"""Real-time risk control: one decision point inside the money path (``engine.decide``), rules as
versioned data (``rules``), block and allow lists (``lists``). See ``docs/risk.md``."""
