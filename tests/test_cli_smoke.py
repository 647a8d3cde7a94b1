from typer.testing import CliRunner

from distill.cli import app as distill_app
from screening.cli import app as screen_app


def test_console_apps_show_help():
    runner = CliRunner()
    for app, word in ((screen_app, "Screen catalysts"), (distill_app, "Distil a large")):
        result = runner.invoke(app, ["--help"])
        assert result.exit_code == 0, result.output
        assert word in result.output
