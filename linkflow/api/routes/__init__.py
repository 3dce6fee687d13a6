"""One router per resource, joined by `linkflow.api.app.create_app`."""
