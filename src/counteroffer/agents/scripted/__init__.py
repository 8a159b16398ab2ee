"""Scripted negotiators: concession, tit-for-tat and unyielding sellers; naive, anchoring, patient, reading and
oracle buyers."""

from counteroffer.agents.scripted.buyers import ConcedingBuyer, PatientBuyer, ReaderBuyer
from counteroffer.agents.scripted.oracle import OracleBuyer
from counteroffer.agents.scripted.sellers import ConcessionSeller, TitForTatSeller, UnyieldingSeller
from counteroffer.prompts.personas import Persona

__all__ = [
    "ConcedingBuyer",
    "ConcessionSeller",
    "OracleBuyer",
    "PatientBuyer",
    "Persona",
    "ReaderBuyer",
    "TitForTatSeller",
    "UnyieldingSeller",
]
