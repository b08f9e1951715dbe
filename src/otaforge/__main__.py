from otaforge.cli.main import main

main()
