
a2@c