

a1newJ¨œØ
name

created_at
labels