from motionxfer.cli import main

main()
