from host_stub.cli import main

main()
