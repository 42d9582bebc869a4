"""Protocol buffer packages of vpsmon (``vpsmon.*``)."""
