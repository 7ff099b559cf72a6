"""Drop alerting (issue 17): the pure detector (detector.py, scope.py), the plan and series files it
reads (plan.py), and the notifiers (notify.py). docs/ALERTS.md says why each rule is there."""
