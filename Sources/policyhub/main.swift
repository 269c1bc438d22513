import PolicyHubCLI

PolicyHubCommand.main()
