`héllo wörld ☃ 日本語 العربية é 😀👩‍💻 "quoted" back\slash tab	 newline
