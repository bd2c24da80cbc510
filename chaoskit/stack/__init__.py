"""The reference payment stack (system under test): gateway, workers, scheduler, bank, offline."""
