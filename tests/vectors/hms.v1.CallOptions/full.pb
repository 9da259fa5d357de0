Ü
x-request-idr-1
x-useruÃ©
bearert0k3nalice" 4bf92f3577b34da6a3ce929d0e0e4736