"""Store URIs are shown without their passwords."""

from mlops.registry.health import redact_uri, scrub


def test_redact_uri_hides_only_the_password():
    assert redact_uri("postgresql://ml:p%40ss@db.internal:5432/mlflow") == "postgresql://ml:***@db.internal:5432/mlflow"
    assert redact_uri("http://[::1]:5000/") == "http://[::1]:5000/"
    assert redact_uri("sqlite:////srv/var/mlflow.db") == "sqlite:////srv/var/mlflow.db"
    assert redact_uri("https://user:pw@[2001:db8::1]/x") == "https://user:***@[2001:db8::1]/x"


def test_scrub_removes_raw_and_decoded_passwords():
    uri = "postgresql://ml:p%40ss@db/mlflow"
    assert scrub("could not log in as ml with p@ss (p%40ss)", uri, "") == "could not log in as ml with *** (***)"
