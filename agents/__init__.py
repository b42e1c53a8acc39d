"""Stream processors: pure cores plus the thin faust agents that wire them."""
