"""An embodied agent: HRM as a policy in BabyAI grid worlds (MiniGrid), trained by behaviour cloning
from the BabyAI bot. Needs the `agent` extra (`pip install "hierarchical-reasoning-model[agent]"`).

- `world`: the levels and the observation encoding (7x7x3 symbolic view, direction, mission tokens)
- `demos`: bot demonstrations on disk (`hrm agent demos`)
- `policy`: the HRM policy (H and L modules of `hrm.models`) and a flat baseline of the same size
- `train`: behaviour cloning with the shared training components (`hrm agent train`)
- `evaluate`: success, steps, teacher-forced accuracy, shadow-bot agreement, ablations (`hrm agent eval`)
- `play`: an episode as a JSON trace (`hrm agent play`, the viewer's Agent page)
"""
