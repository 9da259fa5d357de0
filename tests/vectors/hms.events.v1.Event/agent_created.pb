agent.createda1"¨œØ*a1b
a1scout2
x12
y2@X