"""Training: the request spec, network architectures and the pure trainer.

Nothing here knows about HTTP, the database or jobs. ``spec`` and ``sizing`` import no torch, so the API can
validate a training request without paying for the torch import; every other module imports torch.
"""
