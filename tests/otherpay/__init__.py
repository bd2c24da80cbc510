"""otherpay: a second payment service, built only for chaoskit's tests (see README.md)."""
