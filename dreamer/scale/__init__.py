"""Scale-out: zoom and video jobs spread over a Ray cluster (the optional `ray` extra)."""
