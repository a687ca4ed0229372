"""The evidence pack: one environment's proofs for the privacy council and the auditors.

collect.py gathers the newest artifact of each kind, controls.py judges them against the
guidelines' requirements (controls.yml), pack.py writes, signs and verifies the pack, and
__main__.py is the command line (claims-dc evidence).
"""
