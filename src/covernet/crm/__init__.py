"""Customer relationships: teams, advisor pools, the customer 360 and desk reports."""
