"""Scripted negotiators: concession, tit-for-tat and unyielding sellers, and the sellers that read the buyer's
arguments; naive, anchoring, patient, reading, arguing and oracle buyers."""

from counteroffer.agents.scripted.arguers import ArguePolicy, ArguingBuyer
from counteroffer.agents.scripted.buyers import ConcedingBuyer, PatientBuyer, ReaderBuyer
from counteroffer.agents.scripted.oracle import OracleBuyer
from counteroffer.agents.scripted.reading import ReadingSeller
from counteroffer.agents.scripted.sellers import ConcessionSeller, ScriptedSeller, TitForTatSeller, UnyieldingSeller
from counteroffer.game.hints import HintSet, parse_levers
from counteroffer.prompts.personas import Persona

__all__ = [
    "ArguePolicy",
    "ArguingBuyer",
    "ConcedingBuyer",
    "ConcessionSeller",
    "HintSet",
    "OracleBuyer",
    "PatientBuyer",
    "Persona",
    "ReaderBuyer",
    "ReadingSeller",
    "ScriptedSeller",
    "TitForTatSeller",
    "UnyieldingSeller",
    "parse_levers",
]
