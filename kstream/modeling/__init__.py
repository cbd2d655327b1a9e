"""Models: the zoo of Pipelines, training, model cards and trusted loading, fast scoring and quality scores.

Named ``modeling`` so it is not confused with the top-level ``models/`` folder of trained artifacts.

Modules:

- ``zoo``: which classifiers kstream trains, each a whole scikit-learn Pipeline
- ``selection``: feature selection learnt on the training rows
- ``training``: fit, score on the held-out split, save with a card
- ``artifacts``: model references, cards and hash-checked loading
- ``trust``: which artifacts kstream agrees to unpickle
- ``scorer``: :class:`scorer.Scorer`, a fitted Pipeline's ``predict_proba`` with less fixed cost
- ``quality``: accuracy, macro-F1, TPR/FAR and the other quality scores
"""
