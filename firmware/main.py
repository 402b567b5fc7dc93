# Motekit main.py: hands over to the application in /lib/motekit.
from motekit import app

app.run()
