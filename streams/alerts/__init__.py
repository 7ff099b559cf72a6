"""Drop alerting (issue 17). So far: the notifiers (notify.py); the detector comes next."""
