"""The end-to-end demo (`make demo`): real SST-2 data, the real MiniLM teacher, a Beam build into
a teacher cache, and a 2-layer student with and without KD, compared side by side.

    run      the steps (data, teacher, build, students, speed) and their options
    cli      the command line, the printed table and the PNG (`python -m examples.demo --help`)
    speed    size and inference speed of saved models, measured side by side
"""
