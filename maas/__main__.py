from maas.cli.main import app

app()
