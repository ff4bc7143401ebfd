"""A complete two-agent scenario: a mentor and a new hire. Run it with
`personae run examples/mentoring.py --replicates 8 --db runs/mine.db`."""

from personae import Experiment, Opening, Persona, Says, Scenario

mentor = Persona(
    name="Ada",
    role="mentor",
    big_five={"A": 4.5, "E": 4.0},
    background="Senior engineer who mentors new hires.",
)
junior = Persona(
    name="Ben",
    role="mentee",
    big_five={"N": 3.8, "C": 2.5},
    style="reserved",
    background="New hire, two weeks in, worried about a missed deadline.",
)

scenario = Scenario(
    name="mentoring",
    agents=[mentor, junior],
    rules={
        "mentor": "Ask one question at a time, in one or two sentences.",
        "mentee": "Answer in one or two sentences.",
    },
    opening=Opening(speaker="Ada", text="Hi Ben, how is your second week going?"),
    until=Says("bye", min_turns=6),
    max_turns=10,
)

experiment = Experiment(
    scenario=scenario, grid={"mentee.style": ["reserved", "verbose"]}, replicates=4, seed=7
)

if __name__ == "__main__":
    print(experiment.run("runs/mine.db"))
