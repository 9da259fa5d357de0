
a1scout*search*	summarize2
teamblue@J¨œØXÿÿÿÿÿÿÿÿÿ