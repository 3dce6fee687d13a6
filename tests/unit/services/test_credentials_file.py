"""FileCredentials resolves credentials for `linkflow run` from a JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linkflow.services.credentials_file import CredentialsFileError, FileCredentials


class TestFileCredentials:
    async def test_resolves_data_plus_type_by_name(self, tmp_path: Path) -> None:
        """The node gets the `data` fields and the `type`."""
        path = tmp_path / "credentials.json"
        path.write_text(json.dumps({"gh": {"type": "bearer", "data": {"token": "t"}}}))
        credentials = FileCredentials.from_file(path)
        assert await credentials.resolve("gh") == {"token": "t", "type": "bearer"}

    async def test_an_unknown_reference_raises_lookup_error(self) -> None:
        """As the engine's CredentialResolver protocol asks."""
        with pytest.raises(LookupError):
            await FileCredentials({}).resolve("missing")

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            ("not json", "not valid JSON"),
            ("[]", "must hold a JSON object"),
            ('{"x": 1}', "credential 'x' must be an object"),
            ('{"x": {"data": {}}}', "credential 'x' has no type"),
            ('{"x": {"type": "basic", "data": []}}', "data must be an object"),
        ],
    )
    def test_a_malformed_file_is_refused_naming_the_problem(
        self, tmp_path: Path, content: str, problem: str
    ) -> None:
        """The message names the file and what is wrong with it."""
        path = tmp_path / "credentials.json"
        path.write_text(content)
        with pytest.raises(CredentialsFileError, match=problem) as caught:
            FileCredentials.from_file(path)
        assert str(path) in str(caught.value)

    def test_a_missing_file_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(CredentialsFileError, match="No such file"):
            FileCredentials.from_file(tmp_path / "absent.json")
