
e1a1 (2¨œØ€åšw:operatorBstartJ
ticketOPS-1J

viacliP