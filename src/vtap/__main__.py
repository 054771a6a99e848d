from vtap.cli import main

main()
