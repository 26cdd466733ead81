"""Benchmarks, side by side in one run on this machine: ``nox -s bench`` / ``python -m benchmarks``.

    python -m benchmarks [--model e5-small|tiny|hf:PATH] [--size tiny|full] [--repeats N]
                         [--out reports] [--pipeline-log work/timings] [--precision auto|fp32|bf16]

Writes ``{out}/bench.json`` and ``{out}/bench.md``. Every figure is a median over ``--repeats``
runs with min and max; comparisons interleave both contenders inside each repeat (so a load
spike hits both) and their ratio is the median of the per-repeat ratios. The JSON holds, per
figure, ``name, value, unit, min, max, n, ratio, ratio_min, ratio_max, vs, target,
meets_target, note, details``; ``target`` is ``{"op": ">=" | "<=", "value": x, "of": "ratio" |
"value"}`` or null, so a script checks targets without reading prose. Nothing here is a
pass/fail test: ``tests/test_bench.py`` only runs the tiny size so the suite cannot rot.

Sections:
1. code-switching: fast path vs the one-mask-per-forward definition (same model, sentences,
   config), sentences/s, and whether their substitutions are identical;
2. training: ``salt.train.train`` vs ``transformers.Trainer`` (same model folder, data, batch
   size, precision, max length, dynamic padding, frozen parameters, step count), and the SALT
   step vs the baseline step per example;
3. evaluation: ``evaluate_languages`` (length-bucketed) vs a plain batched loop in file order,
   pairs/s and padding waste;
4. utilisation: achieved FLOP/s of training and evaluation over matmul FLOP/s measured in the
   same run (fp32 and bf16);
5. pipeline: per-stage wall time and peak RSS read from ``work/timings/*.json`` (written by the
   CLI after each command); ``dvc repro`` itself is never run here.

Layout: ``common`` (sizes, targets, figures, setup), ``flops`` (matmul peak, FLOP model,
utilisation), ``codeswitch``, ``train``, ``evaluate``, ``pipeline`` (the sections), ``report``
(machine, Markdown), ``run`` (the run and the command line).
"""
