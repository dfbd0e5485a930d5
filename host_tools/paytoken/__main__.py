from paytoken.cli import main

main()
