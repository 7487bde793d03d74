"""The engine: what every vmapped sweep shares, whatever it trains.

* :mod:`~supjax.engine.spec`: declarations (a field's role once), the rules, TOML, the resume diff;
* :mod:`~supjax.engine.table`: the per-model table from the declarations: its schema, rows and traced fields;
* :mod:`~supjax.engine.layout`: where a model sits in a group, with the one decoder of the padding marker;
* :mod:`~supjax.engine.program`: a wing's one-model step, vmapped and scanned in windows of steps;
* :mod:`~supjax.engine.driver`: the compiled chunks and their hooks (checkpoints, progress, signals);
* :mod:`~supjax.engine.cache`: the persistent compilation cache.

A wing (the toy models, the SAEs) plugs in its spec, its layout, its one-model step, its data draw,
what it logs and what it writes at the end; the engine never names a wing. Importing this package
imports no JAX: the declarations are shared with the analysis side.
"""
