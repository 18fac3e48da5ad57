"""The benchmark suite of issue 5: dnsd against dnsmasq and aardvark-dns, and dnsd at scale.

Run it with `python3 -m bench` (as root); see bench/README.md. Nothing here is a test.
"""
