"""LLM negotiators (:mod:`.agent`) and their spec parameters (:mod:`.factory`); the models behind them are in
:mod:`counteroffer.models`, their prompts in :mod:`counteroffer.prompts`."""
