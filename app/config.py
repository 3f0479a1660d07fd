"""Configuration from PISTALKA_* environment variables."""

import os
import secrets
import tempfile
from functools import cached_property
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PISTALKA_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""
    public_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    # Where the key is generated when PISTALKA_SECRET_KEY is not set: never beside the database,
    # so that a copy of the data directory or a backup does not carry the key that opens it.
    secret_key_file: Path = Path("keys/secret.key")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: bool = False
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "Píšťalka <noreply@localhost>"

    argon2_memory_kib: int = 65536
    argon2_iterations: int = 3
    argon2_lanes: int = 4
    session_hours: int = 8
    login_lock_after: int = 10
    login_lock_minutes: int = 15
    login_slowdown_seconds: float = 1.0

    # The longest wait for the database: connecting, a pooled connection, a lock, a statement
    # of a request. A frozen or unreachable database then answers 503 instead of hanging.
    database_timeout_seconds: float = 5.0

    worker_interval_seconds: float = 2.0

    # Where uploads are held, encrypted, while the request is read; the system's temporary
    # directory by default.
    spool_dir: Path | None = None
    max_file_bytes: int = 25 * 1024 * 1024
    max_files: int = 10
    submissions_per_hour: int = 10
    lookups_per_10_minutes: int = 60
    # Registrations from one address, the page and the API together: each creates an
    # organisation and mails its address.
    registrations_per_hour: int = 5
    # Failed logins from one address, whatever the e-mail: guessing across many accounts.
    login_attempts_per_10_minutes: int = 30
    # Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the
    # client the per-address limits count; from anyone else the header is ignored.
    trusted_proxies: str = ""
    # /metrics answers the loopback address, or a request with this bearer token.
    metrics_token: SecretStr | None = None
    # A human needs a few seconds to fill in the form; bots post at once.
    form_min_fill_seconds: float = 3.0

    # The operator as the supplier on invoices.
    supplier_name: str = "Píšťalka s.r.o."
    supplier_address: str = "Praha"
    supplier_ico: str = "00000000"
    supplier_dic: str = ""
    supplier_bank_account: str = ""
    # The card payment gateway (GoPay); card payments are offered only when it is configured.
    gopay_url: str = ""
    gopay_goid: int = 0
    gopay_client_id: str = ""
    gopay_client_secret: SecretStr | None = None

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
                raise ValueError("secret_key must be 64 hexadecimal characters (32 bytes)")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL; an SQLite file under the data directory by default."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'pistalka.db').resolve()}"
        if url.startswith("sqlite:"):
            return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        return url

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @cached_property
    def server_key(self) -> bytes:
        """The service's own secret: configured, or generated once into `secret_key_file`."""
        if self.secret_key is not None:
            return bytes.fromhex(self.secret_key.get_secret_value())
        path = self.secret_key_file
        if not path.exists():
            # Installations from before `secret_key_file` keep theirs in the data directory:
            # it moves out of it, never to be replaced by a new key that opens nothing.
            legacy = self.data_dir / "secret.key"
            try:
                _install_key(path, legacy.read_text(encoding="ascii").strip())
                legacy.unlink(missing_ok=True)
            except FileNotFoundError:
                _install_key(path, secrets.token_hex(32))
        return bytes.fromhex(path.read_text(encoding="ascii").strip())


def _install_key(path: Path, key: str) -> None:
    """Write the key file 0600 in a 0700 directory, whole or not at all, unless one exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key)
        # A hard link never replaces a file: of two processes starting at once, the first
        # key installed wins and both read it.
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def get_settings() -> Settings:
    return Settings()
