from compassion_audio.cli import main

main()
