main :: IO ()
main = putStrLn "hi"
