"""What several test folders share: the services they need (`services`), `salas serve` and
other servers as processes (`processes`), a TCP relay that cuts or mutes connections
(`relay`), Node.js scripts (`node`) and Chromium with the chat page (`browser`)."""
