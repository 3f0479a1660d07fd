from app import migrate
from app.config import Settings


def test_models_and_migrations_do_not_drift(settings: Settings) -> None:
    migrate.check(settings)


def test_migrations_go_down_and_up_again(settings: Settings) -> None:
    migrate.downgrade(settings, "base")
    migrate.upgrade(settings)
    migrate.check(settings)
