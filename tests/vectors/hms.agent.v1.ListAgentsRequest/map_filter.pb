

teamblue

tiergold"llm