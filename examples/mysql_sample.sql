-- The movies + directors sample (examples/data/*.csv) as MySQL tables, for the seed demo.
-- From the repository root:
--   mariadb -h 127.0.0.1 -u root -e 'CREATE DATABASE IF NOT EXISTS osiris_demo'
--   mariadb --local-infile=1 -h 127.0.0.1 -u root osiris_demo < examples/mysql_sample.sql
DROP TABLE IF EXISTS movies, directors;
CREATE TABLE directors (
  director_id INT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  country VARCHAR(60),
  birth_year INT
) CHARACTER SET utf8mb4;
CREATE TABLE movies (
  movie_id INT PRIMARY KEY,
  title VARCHAR(200) NOT NULL,
  director_id INT NOT NULL,
  release_year INT,
  genre VARCHAR(40),
  runtime_minutes INT,
  budget_usd BIGINT NULL,
  box_office_usd BIGINT NULL
) CHARACTER SET utf8mb4;
LOAD DATA LOCAL INFILE 'examples/data/directors.csv' INTO TABLE directors CHARACTER SET utf8mb4
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' LINES TERMINATED BY '\n' IGNORE 1 LINES
  (director_id, name, country, birth_year);
LOAD DATA LOCAL INFILE 'examples/data/movies.csv' INTO TABLE movies CHARACTER SET utf8mb4
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' LINES TERMINATED BY '\n' IGNORE 1 LINES
  (movie_id, title, director_id, release_year, genre, runtime_minutes, @budget, @box_office)
  SET budget_usd = NULLIF(@budget, ''), box_office_usd = NULLIF(@box_office, '');
