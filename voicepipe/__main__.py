from voicepipe.cli import program

program()
