"""Stage 1, scripts: exercise templates and their parameters, markers, client profiles, checks, programmes."""
