from composer_automl.cli import main

main()
